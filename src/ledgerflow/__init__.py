"""The composition root: settings, the `ledgerflow` CLI and the embedded dev stack."""
