"""Running a session: the runner API, the loop the chart drives, the scheduler, pauses and answers, the
run inputs, re-drive and the demo.
"""
