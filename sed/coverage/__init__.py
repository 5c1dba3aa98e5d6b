"""Coverage planning: where a city should mount its next sensors (``sedcity coverage``).

``physics`` gives the received level of a class's event at a distance (spreading, ISO 9613-1
air absorption, ISO 9613-2 screening); ``locate_error`` the probability that at least three
sensors hear it and the Cramér-Rao 95 % position error of the geometry; ``validate`` checks
both against ShotSpotter's Pittsburgh live-fire test. See ``docs/coverage-physics.md``.
"""
