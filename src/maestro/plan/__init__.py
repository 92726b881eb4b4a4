"""Plans: the PRD, the task graph (tasks.yaml, beads, markdown), and its ordering into parallel groups."""
