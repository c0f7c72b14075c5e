"""Analytics: metrics computed in PostgreSQL over what the other domains write, voice-call records,
message sentiment, and the real-time metrics stream."""
