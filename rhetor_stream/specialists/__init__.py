"""AI specialists: the roster, conversation memory, prompts, and the tools that stream their answers."""
from rhetor_stream.specialists.roster import RosterError, Specialist, load_roster
from rhetor_stream.specialists.service import SPECIALISTS, SpecialistService, setup

__all__ = ["SPECIALISTS", "RosterError", "Specialist", "SpecialistService", "load_roster", "setup"]
