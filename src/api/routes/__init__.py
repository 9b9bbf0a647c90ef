"""One router per resource, combined in `api.app`."""
