"""Call review: a head's comments at moments of a recording, tags, a checklist score, reviewed or not."""
