"""The operator's I/O side: a work queue, leader election, and the reconcilers that apply the pure plans."""
