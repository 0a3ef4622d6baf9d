"""Dataset manifest, IDX parsing, seeding and preparation."""
