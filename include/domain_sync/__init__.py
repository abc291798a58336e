"""Tenant-to-domain sync: Microsoft Entra ID (Graph) into an Active Directory domain, one way.

Stages, one subpackage each: extract -> transform -> validate -> plan -> apply; `runs` ties a run's
files together and `state` holds what is committed between runs.
"""
