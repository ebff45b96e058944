"""The bootstrap program's composition (programs/bootstrap): what exists before any environment's first up."""
