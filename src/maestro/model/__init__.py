"""The session model: charts (statecharts/*.yaml), the machine compiled from them, the guards (pure
functions of the state), and the one event interpreter (the reducer).
"""
