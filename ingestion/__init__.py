"""Everything that comes in over the wire: parsers, validation, limits and bulk import."""
