"""Saved runs (issue 10): immutable snapshots of a session behind a share link, and the gallery.

snapshot.py is the worker side (a run's record from a live session, a saved run's first frame
from its export); app/storage/runs.py the queries; app/api/routes/runs.py the routes and pages.
"""
