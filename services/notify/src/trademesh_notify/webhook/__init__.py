"""Webhook channels: the address guard, the signature, and the sender (the one home of httpx here)."""
