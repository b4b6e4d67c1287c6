"""Management commands of ingestion: bulk import of event files and the demo data seed."""
