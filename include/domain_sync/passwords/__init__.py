"""Passwords the sync hands to the domain, shared by the apply stage (initial passwords) and the
credentials stage (password changes):

- `policy`: the domain's password policy, random passwords that meet it, and the rule that a password
  only travels over an encrypted LDAP connection.
- `stores`: the records a credential store hands over (initial passwords, password changes), the sink
  and source interfaces, and the settings that choose a store; `keyvault` (Azure Key Vault secrets) and
  `dropfolder` (a folder of Fernet envelopes) implement both.

Graph does not expose password hashes, so nothing here reads a password from the tenant.
"""
