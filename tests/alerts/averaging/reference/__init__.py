"""The averaging job as it was before issue 19's faster tick: the reference `test_job_equivalence` compares
`alerts.averaging.job.compute_windows` with, on random data.

Frozen copies of the landed `alerts/averaging/job.py`, `index_job.py`, `series.py`, `vectorised.py`,
`storage/windows_store.py` and `storage/indices_store.py` (commit da33a23), imports pointed at each other; the pure
definitions they build on (`alerts.averaging.averages`, `nowcast`, `indices`, `windows`) are shared. One change:
the landed queries left the order of the samples inside an hour (and of the days inside a year) to the database,
and a mean's last bit depends on the order its inputs are summed in; here they are read in time order, series by
series and device by device (``ORDER BY``), the order the job defines now. Not imported by aqnet.
"""
