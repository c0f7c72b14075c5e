"""Messages to and from patients over WhatsApp, SMS and email."""
