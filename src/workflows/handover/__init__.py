"""The hand-over, in the API process: reserved transfers gathered into settlement sagas."""
