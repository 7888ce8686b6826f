"""Instruments that look inside training: backprop trace, optimizer race, time travel."""
