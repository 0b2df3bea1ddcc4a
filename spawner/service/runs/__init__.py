"""Runs: the researchers' workflows, sweeps and training jobs, admitted per user across clusters."""
