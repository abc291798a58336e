"""The credentials stage: password changes from the credential source reach the domain (`stage`), once
each and in order per user (`ledger`: which were applied). The stores and password rules it shares with
the apply stage are in domain_sync.passwords. `python -m domain_sync.credentials` is the helpdesk's tool
for the drop folder."""
