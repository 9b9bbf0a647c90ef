"""Review of a transfer above its account's `review_above`: one workflow per transfer, its
activity and its start."""
