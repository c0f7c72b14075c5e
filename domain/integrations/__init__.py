"""Integration clients: the systems (EHRs) that call the FHIR and HL7 endpoints, and their secrets."""
