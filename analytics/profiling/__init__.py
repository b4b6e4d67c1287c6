"""Staging profiling with django-silk: masking, SQL recording, request labels, clean-up and slow-query reports.

Installed as a Django app only when analytics.settings.profiling switches silk on; production
and test settings never import it.
"""
