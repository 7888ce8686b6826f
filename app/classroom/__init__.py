"""The classroom (issue 10): classes of learners, and the teacher's dashboard of live tiles.

hub.py (web process) keeps each class's learners and dashboards and asks the workers for tiles
while a dashboard is open; tiles.py (worker) draws a learner's boundary at low resolution.
Queries are in app/storage/classes.py, routes in app/api/routes/classes.py.
"""
