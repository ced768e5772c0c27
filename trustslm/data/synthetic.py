"""A synthetic corpus for trying the privacy loop: short customer-support notes with invented
names and invented personal data (e-mail addresses, phone numbers). Nothing in it is real.

>>> notes = support_notes(200, seed=0)
"""

from __future__ import annotations

import random

_FIRST = ["Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
          "Mara", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wes", "Yara"]
_LAST = ["Alvarez", "Brandt", "Castillo", "Dumont", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen",
         "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quintana", "Rossi", "Silva", "Tanaka"]
_ISSUES = ["could not log in after the update", "was charged twice for the same order",
           "asked to change the delivery address", "reported that the app crashes on start",
           "wants a refund for a damaged parcel", "did not receive the confirmation e-mail",
           "asked how to export the invoices", "reported a slow connection in the evenings",
           "requested to close the account", "asked for a copy of the contract"]
_ACTIONS = ["We reset the password and closed the ticket.", "A refund was issued the same day.",
            "The issue was escalated to the second line.", "The customer was asked to send a screenshot.",
            "We sent the instructions by e-mail.", "A technician will call back tomorrow."]


def support_notes(n: int, *, seed: int = 0) -> list[str]:
    """``n`` distinct notes such as "Ticket 4821: Grace Okafor (grace.okafor@example.net,
    555-201-3344) could not log in after the update. We reset the password and closed the
    ticket." The domains are reserved example domains; the numbers use the 555 exchange."""
    rng = random.Random(seed)
    seen: set[str] = set()
    notes = []
    while len(notes) < n:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first.lower()}.{last.lower()}{rng.randrange(10, 99)}@{rng.choice(['example.com', 'example.net', 'example.org'])}"
        phone = f"555-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}"
        note = (f"Ticket {rng.randrange(1000, 10000)}: {first} {last} ({email}, {phone}) "
                f"{rng.choice(_ISSUES)}. {rng.choice(_ACTIONS)}")
        if note not in seen:
            seen.add(note)
            notes.append(note)
    return notes
