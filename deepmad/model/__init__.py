"""What a design is and what it costs: architectures, block definitions, accounting, entropy and effectiveness, the TinyNAS format."""
