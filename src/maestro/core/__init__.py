"""The foundation every other package builds on: the error tree, the records of the log, the seams
(time, ids), text and YAML helpers. Imports nothing else of maestro.
"""
