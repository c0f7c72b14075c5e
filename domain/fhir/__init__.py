"""FHIR R4 in and out: records rendered as FHIR resources, searches, and transaction bundles imported."""
