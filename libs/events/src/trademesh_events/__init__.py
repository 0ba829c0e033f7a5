"""The events contract: event models, typed identifiers, topics and the CloudEvents envelope. Pure pydantic, no I/O."""
