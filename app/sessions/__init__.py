"""Live training sessions: the session itself, its worker processes, frames and the wire."""
