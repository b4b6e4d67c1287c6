"""Settings package: `base` holds everything, the other modules adjust it per environment."""
