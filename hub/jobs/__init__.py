"""Batch jobs: notebooks, scripts and commands run on a GPU slice outside any notebook session.

Kept free of imports: `astrago.hub.jobs.runner` runs inside users' jobs, in the user
environment, where only the standard library and papermill can be counted on.
"""
