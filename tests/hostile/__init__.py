"""The hostile corpus: what a hostile user, machine or file does to quantdoctor (issue #18)."""
