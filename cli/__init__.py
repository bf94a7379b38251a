"""The derivs command line: manual fetches against the venues or the emulator."""
