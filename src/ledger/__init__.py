"""The pure domain of Ledgerflow: money, accounts, transfers, balance rules, slot hashing.

Nothing in this package performs I/O or reads a clock; an import-linter contract keeps it so.
"""
