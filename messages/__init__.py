"""Wire messages of the mesh: normalized events, the envelope and control messages, the codec.

`messages.nautilus` (the catalog classes) is imported separately because it pulls in
nautilus_trader, which the actors themselves never need.
"""
