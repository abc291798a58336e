"""Generate a realistic tenant file: users and groups as Microsoft Graph returns them.

Deterministic: the same (users, groups, seed, domain) give the same bytes, on every run and machine.

    python -m emulator generate --users 60 --groups 12 --seed 2026 --out emulator/tenants/demo.json
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from .tenant import MEMBER_ONLY_KINDS

DEFAULT_DOMAIN = "corp.example.test"
ALIAS_DOMAIN = "corpexample.onmicrosoft.com"
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# Letters that Unicode decomposition does not turn into ASCII.
_FOLD = str.maketrans(
    {
        "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
        "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i", "ŀ": "l", "ħ": "h",
    }
)


def fold_ascii(text: str) -> str:
    """Latin text without diacritics (é -> e, ø -> o, ß -> ss, Ł -> L); other characters are dropped."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return decomposed.encode("ascii", "ignore").decode("ascii")


# (given names, surnames, CJK order, locations, languages, phone country code, streets)
# A name is "Name" (ASCII form by folding) or ("Native", "Latin") for other scripts.
_CULTURES: dict[str, dict[str, Any]] = {
    "en": {
        "weight": 30,
        "given": ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
                  "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
                  "Charles", "Karen", "Daniel", "Emily", "Matthew", "Olivia", "Anna", "Noah", "Liam", "Mia"],
        "surname": ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
                    "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris",
                    "Clark", "Lewis", "O'Brien", "O'Connor", "Walker", "Young"],
        "places": [("Seattle", "WA", "United States", "US", "981{:02d}"),
                   ("New York", "NY", "United States", "US", "100{:02d}"),
                   ("London", "England", "United Kingdom", "GB", "EC1A {}BB"),
                   ("Dublin", "Leinster", "Ireland", "IE", "D{:02d} X285")],
        "lang": ["en-US", "en-GB"],
        "cc": "1",
        "streets": ["Main Street", "Pine Street", "Oak Avenue", "Elm Road", "Lake Drive", "Market Street"],
        "number_first": True,
    },
    "de": {
        "weight": 12,
        "given": ["Jürgen", "Jörg", "Björn", "Günter", "Lukas", "Lena", "Jonas", "Sophie", "Maximilian",
                  "Hannah", "Käthe", "Uwe", "Anna", "Felix"],
        "surname": ["Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Strauß", "Groß", "Schäfer", "Köhler",
                    "Bäcker", "Meyer", "Hoffmann", "Smith"],
        "places": [("München", "Bayern", "Germany", "DE", "803{:02d}"),
                   ("Köln", "Nordrhein-Westfalen", "Germany", "DE", "506{:02d}"),
                   ("Zürich", "Zürich", "Switzerland", "CH", "80{:02d}")],
        "lang": ["de-DE", "de-CH"],
        "cc": "49",
        "streets": ["Hauptstraße", "Königsallee", "Schloßstraße", "Bahnhofstraße", "Gartenweg"],
        "number_first": False,
    },
    "fr": {
        "weight": 10,
        "given": ["Léa", "Chloé", "Zoë", "René", "Hélène", "François", "Gaël", "Noémie", "Jérôme", "Clément",
                  "Amélie", "Loïc"],
        "surname": ["Dubois", "Lefèvre", "Moreau", "Girard", "Bélanger", "Gauthier", "Fontaine", "Chevalier",
                    "Rousseau", "Lévesque", "Mercier", "D'Aubigné"],
        "places": [("Paris", "Île-de-France", "France", "FR", "750{:02d}"),
                   ("Montréal", "Québec", "Canada", "CA", "H2Y {}C6")],
        "lang": ["fr-FR", "fr-CA"],
        "cc": "33",
        "streets": ["Rue de la Paix", "Avenue des Champs-Élysées", "Boulevard Saint-Germain", "Rue Lafayette"],
        "number_first": True,
    },
    "es": {
        "weight": 10,
        "given": ["José", "María", "Iñaki", "Begoña", "Núria", "Sofía", "Martín", "Lucía", "Ángel", "Raúl",
                  "Inés", "Jesús"],
        "surname": ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez",
                    "Muñoz", "Ibáñez", "Peña", "Núñez"],
        "places": [("Madrid", "Comunidad de Madrid", "Spain", "ES", "280{:02d}"),
                   ("A Coruña", "Galicia", "Spain", "ES", "150{:02d}"),
                   ("Ciudad de México", "CDMX", "Mexico", "MX", "060{:02d}")],
        "lang": ["es-ES", "es-MX"],
        "cc": "34",
        "streets": ["Calle Mayor", "Avenida de la Constitución", "Calle de Alcalá", "Paseo de la Castellana"],
        "number_first": False,
    },
    "nordic": {
        "weight": 8,
        "given": ["Søren", "Bjørn", "Jørgen", "Åsa", "Ingrid", "Sigrid", "Øystein", "Mette", "Lars", "Kirsten"],
        "surname": ["Sørensen", "Jørgensen", "Nielsen", "Hansen", "Øvergaard", "Larsen", "Åberg", "Lindqvist",
                    "Bergström", "Dahl"],
        "places": [("Oslo", "Oslo", "Norway", "NO", "01{:02d}"),
                   ("Malmö", "Skåne", "Sweden", "SE", "211 {:02d}"),
                   ("København", "Hovedstaden", "Denmark", "DK", "10{:02d}")],
        "lang": ["nb-NO", "sv-SE", "da-DK"],
        "cc": "47",
        "streets": ["Storgata", "Drottninggatan", "Strøget", "Karl Johans gate"],
        "number_first": False,
    },
    "pl": {
        "weight": 8,
        "given": ["Łukasz", "Paweł", "Małgorzata", "Wojciech", "Agnieszka", "Krzysztof", "Żaneta", "Zofia",
                  "Michał", "Katarzyna"],
        "surname": ["Łukasiewicz", "Kowalski", "Nowak", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski",
                    "Zieliński", "Szymański", "Dąbrowski"],
        "places": [("Kraków", "Małopolskie", "Poland", "PL", "31-0{:02d}"),
                   ("Łódź", "Łódzkie", "Poland", "PL", "90-0{:02d}")],
        "lang": ["pl-PL"],
        "cc": "48",
        "streets": ["ulica Długa", "ulica Piękna", "aleja Róż", "ulica Świętokrzyska"],
        "number_first": False,
    },
    "zh": {
        "weight": 8,
        "given": [("伟", "Wei"), ("芳", "Fang"), ("静", "Jing"), ("磊", "Lei"), ("敏", "Min"), ("强", "Qiang"),
                  ("丽", "Li"), ("军", "Jun"), ("洋", "Yang"), ("艳", "Yan")],
        "surname": [("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"), ("杨", "Yang"),
                    ("黄", "Huang"), ("赵", "Zhao")],
        "cjk": True,
        "places": [("上海", "上海", "China", "CN", "2000{:02d}"), ("北京", "北京", "China", "CN", "1000{:02d}")],
        "lang": ["zh-CN"],
        "cc": "86",
        "streets": ["南京路", "长安街", "淮海中路"],
        "number_first": False,
    },
    "ar": {
        "weight": 6,
        "given": [("محمد", "Mohammed"), ("أحمد", "Ahmed"), ("فاطمة", "Fatima"), ("علي", "Ali"), ("مريم", "Maryam"),
                  ("عمر", "Omar"), ("ليلى", "Layla"), ("يوسف", "Youssef")],
        "surname": [("الحسن", "Al-Hassan"), ("حداد", "Haddad"), ("خليل", "Khalil"), ("منصور", "Mansour"),
                    ("سعيد", "Saeed"), ("ناصر", "Nasser")],
        "places": [("Dubai", "Dubai", "United Arab Emirates", "AE", None),
                   ("القاهرة", "القاهرة", "Egypt", "EG", "115{:02d}")],
        "lang": ["ar-AE", "ar-EG"],
        "cc": "971",
        "streets": ["شارع الملك فهد", "Sheikh Zayed Road", "شارع التحرير"],
        "number_first": True,
    },
    "el": {
        "weight": 4,
        "given": [("Γιώργος", "Giorgos"), ("Μαρία", "Maria"), ("Νίκος", "Nikos"), ("Ελένη", "Eleni"),
                  ("Δημήτρης", "Dimitris"), ("Αικατερίνη", "Aikaterini"), ("Κώστας", "Kostas"), ("Σοφία", "Sofia")],
        "surname": [("Παπαδόπουλος", "Papadopoulos"), ("Νικολάου", "Nikolaou"), ("Γεωργίου", "Georgiou"),
                    ("Οικονόμου", "Oikonomou"), ("Αλεξίου", "Alexiou")],
        "places": [("Αθήνα", "Αττική", "Greece", "GR", "105 {:02d}"),
                   ("Θεσσαλονίκη", "Κεντρική Μακεδονία", "Greece", "GR", "546 {:02d}")],
        "lang": ["el-GR"],
        "cc": "30",
        "streets": ["Οδός Ερμού", "Λεωφόρος Συγγρού", "Οδός Αιόλου"],
        "number_first": False,
    },
    "tr": {
        "weight": 4,
        "given": ["Şükrü", "Ayşe", "Çağla", "İbrahim", "Gülşen", "Barış", "Ömer", "Işıl"],
        "surname": ["Yılmaz", "Öztürk", "Çelik", "Şahin", "Doğan", "Kılıç"],
        "places": [("İstanbul", "İstanbul", "Turkey", "TR", "344{:02d}"), ("Ankara", "Ankara", "Turkey", "TR", "065{:02d}")],
        "lang": ["tr-TR"],
        "cc": "90",
        "streets": ["İstiklal Caddesi", "Bağdat Caddesi", "Atatürk Bulvarı"],
        "number_first": False,
    },
}
_CULTURE_NAMES = list(_CULTURES)
_CULTURE_WEIGHTS = [_CULTURES[c]["weight"] for c in _CULTURE_NAMES]

DEPARTMENTS = {
    "Engineering": ["Software Engineer", "Senior Software Engineer", "Engineering Manager", "Site Reliability Engineer",
                    "Principal Engineer", "QA Engineer"],
    "Sales": ["Account Executive", "Sales Manager", "Sales Development Representative", "Key Account Manager"],
    "Marketing": ["Marketing Specialist", "Content Strategist", "Head of Marketing", "Brand Manager"],
    "Finance": ["Accountant", "Financial Analyst", "Controller", "Chief Financial Officer"],
    "Human Resources": ["HR Business Partner", "Recruiter", "Head of People", "Payroll Specialist"],
    "Legal": ["Legal Counsel", "Paralegal", "General Counsel"],
    "Operations": ["Operations Manager", "Logistics Coordinator", "Supply Chain Analyst"],
    "Customer Support": ["Support Engineer", "Customer Success Manager", "Support Team Lead"],
    "Research & Development": ["Research Scientist", "Data Scientist", "Lab Manager"],
    "IT": ["System Administrator", "Network Engineer", "IT Support Technician", "Security Analyst"],
    "Facilities": ["Facilities Coordinator", "Office Manager"],
    "Procurement": ["Buyer", "Procurement Manager", "Vendor Manager"],
}
_DEPARTMENT_NAMES = list(DEPARTMENTS)
_PROJECTS = ["Phoenix", "Aurora", "Zephyr", "Atlas", "Nimbus", "Orion", "Helios", "Mercury", "Borealis", "Kestrel",
             "Ørsted", "Café", "Mjølnir", "Straße", "Niño", "Ωmega", "Łabędź", "北极星", "النجم"]
_TEAM_KINDS = ["Team", "Project", "DL", "Committee", "Guild", "Working Group"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _name(entry: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(entry, tuple):
        return entry
    return entry, fold_ascii(entry)


_NICK_RE = re.compile(r"[^a-z0-9.\-]+")
_REPEAT_RE = re.compile(r"[.\-]{2,}")


class _Nicknames:
    """Unique, ASCII-folded mail nicknames: "anna.smith", then "anna.smith2", "anna.smith3", ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self._next: dict[str, int] = {}

    def take(self, base: str) -> str:
        nick = _NICK_RE.sub("", fold_ascii(base).lower().replace(" ", "-")).strip(".-")
        nick = _REPEAT_RE.sub(lambda m: m.group(0)[0], nick)[:56] or "user"
        candidate = nick
        n = self._next.get(nick, 1)
        while candidate in self.used:
            n += 1
            candidate = f"{nick}{n}"
        self._next[nick] = n
        self.used.add(candidate)
        return candidate


def _date(rng: random.Random, max_days_back: int, min_days_back: int = 0) -> str:
    seconds = rng.randrange(min_days_back * 86400, max_days_back * 86400)
    return (_EPOCH - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _phone(rng: random.Random, cc: str) -> str:
    return f"+{cc} {rng.randrange(100, 999)} {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"


def _users(rng: random.Random, n: int, domain: str, used_nicks: _Nicknames) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    names: list[tuple[str, Any, Any]] = []
    forced_dups = {n // 3, (2 * n) // 3} if n >= 20 else set()
    forced_disabled = n - 1 if n >= 10 else None
    any_disabled = False
    for i in range(n):
        if i > 0 and (i in forced_dups or rng.random() < 0.03):
            culture_name, given_e, surname_e = names[rng.randrange(i)]
        else:
            culture_name = rng.choices(_CULTURE_NAMES, _CULTURE_WEIGHTS)[0]
            c = _CULTURES[culture_name]
            given_e, surname_e = rng.choice(c["given"]), rng.choice(c["surname"])
        names.append((culture_name, given_e, surname_e))
        c = _CULTURES[culture_name]
        given, given_ascii = _name(given_e)
        surname, surname_ascii = _name(surname_e)
        display = f"{surname}{given}" if c.get("cjk") else f"{given} {surname}"
        nick = used_nicks.take(f"{given_ascii}.{surname_ascii}")
        upn = f"{nick}@{domain}"
        city, state, country, usage, postal_fmt = rng.choice(c["places"])
        postal = postal_fmt.format(rng.randrange(1, 99)) if postal_fmt else None
        street = rng.choice(c["streets"])
        number = rng.randrange(1, 250)
        street_address = f"{number} {street}" if c["number_first"] else f"{street} {number}"
        department = rng.choice(_DEPARTMENT_NAMES)
        enabled = rng.random() >= 0.05
        if i == forced_disabled and not any_disabled:
            enabled = False
        any_disabled = any_disabled or not enabled
        has_mail = rng.random() >= 0.02
        mail = upn if has_mail else None
        roll = rng.random()
        if roll < 0.20:
            policies = "DisablePasswordExpiration"
        elif roll < 0.23:
            policies = "DisablePasswordExpiration, DisableStrongPassword"
        elif roll < 0.25:
            policies = "DisableStrongPassword"
        else:
            policies = None
        manager = None
        if i > 0 and rng.random() < 0.9:
            manager = {"id": users[rng.randrange(0, max(1, min(i, n // 10)))]["id"]}
        company_roll = rng.random()
        company = "Contoso Ltd." if company_roll < 0.9 else ("Fabrikam GmbH" if company_roll < 0.97 else None)
        users.append(
            {
                "id": _uuid(rng),
                "accountEnabled": enabled,
                "businessPhones": [_phone(rng, c["cc"])] if rng.random() < 0.85 else [],
                "city": city,
                "companyName": company,
                "country": country,
                "createdDateTime": _date(rng, 3000, 400),
                "department": department,
                "displayName": display,
                "employeeId": f"{100000 + i}" if rng.random() >= 0.03 else None,
                "faxNumber": _phone(rng, c["cc"]) if rng.random() < 0.1 else None,
                "givenName": given,
                "jobTitle": rng.choice(DEPARTMENTS[department]),
                "lastPasswordChangeDateTime": _date(rng, 400),
                "mail": mail,
                "mailNickname": nick,
                "manager": manager,
                "mobilePhone": _phone(rng, c["cc"]) if rng.random() < 0.8 else None,
                "officeLocation": f"{city}, Building {rng.randrange(1, 12)}/{rng.randrange(1, 6)}{rng.randrange(10, 60)}",
                "onPremisesSyncEnabled": None,
                "passwordPolicies": policies,
                "passwordProfile": {"forceChangePasswordNextSignIn": rng.random() < 0.05},
                "postalCode": postal,
                "preferredLanguage": rng.choice(c["lang"]),
                "proxyAddresses": [f"SMTP:{mail}", f"smtp:{nick}@{ALIAS_DOMAIN}"] if mail else [],
                "state": state,
                "streetAddress": street_address,
                "surname": surname,
                "usageLocation": usage,
                "userPrincipalName": upn,
                "userType": "Member",
            }
        )
    return users


def _group(
    rng: random.Random, name: str, domain: str, used_nicks: _Nicknames, flavour: str, description: str | None
) -> dict[str, Any]:
    nick = used_nicks.take(name)
    mail_enabled = flavour in ("unified", "mail-security")
    mail = f"{nick}@{domain}" if mail_enabled else None
    return {
        "id": _uuid(rng),
        "createdDateTime": _date(rng, 2000, 30),
        "description": description,
        "displayName": name,
        "groupTypes": ["Unified"] if flavour == "unified" else [],
        "mail": mail,
        "mailEnabled": mail_enabled,
        "mailNickname": nick,
        "proxyAddresses": [f"SMTP:{mail}", f"smtp:{nick}@{ALIAS_DOMAIN}"] if mail else [],
        "securityEnabled": flavour != "unified",
        "visibility": "Private" if flavour == "unified" and rng.random() < 0.3 else ("Public" if flavour == "unified" else None),
    }


def _groups(
    rng: random.Random, m: int, users: list[dict[str, Any]], domain: str, used_nicks: _Nicknames,
    memberships: int | None = None,
) -> list[dict[str, Any]]:
    n = len(users)
    groups: list[dict[str, Any]] = []
    member_lists: list[list[int]] = []
    n_departments = min(len(_DEPARTMENT_NAMES), max(0, (m - 2) // 2))
    manager_ids = {u["manager"]["id"] for u in users if u["manager"]}
    names_so_far: list[str] = []
    forced_dup = m - 3 if m >= 8 else None
    for gi in range(m):
        if gi == 0:
            name, flavour, desc = "All Employees", "mail-security", "Every member of staff."
            members = list(range(n))
        elif gi == 1:
            name, flavour, desc = "Managers", "security", "People with direct reports."
            members = [i for i, u in enumerate(users) if u["id"] in manager_ids]
        elif gi < 2 + n_departments:
            dept = _DEPARTMENT_NAMES[gi - 2]
            name, flavour, desc = f"Department {dept}", "mail-security", f"Everyone in {dept}."
            members = [i for i, u in enumerate(users) if u["department"] == dept]
        else:
            if names_so_far and gi > 2 + n_departments and (gi == forced_dup or rng.random() < 0.05):
                name = rng.choice(names_so_far[2 + n_departments :] or names_so_far)
            else:
                kind = rng.choice(_TEAM_KINDS)
                if kind in ("Project", "Guild"):
                    name = f"{kind} {rng.choice(_PROJECTS)}"
                elif kind == "DL":
                    place = rng.choice(rng.choice(list(_CULTURES.values()))["places"])[0]
                    name = f"DL {rng.choice(_DEPARTMENT_NAMES)} {fold_ascii(place) or 'Global'}"
                else:
                    place = rng.choice(rng.choice(list(_CULTURES.values()))["places"])[0]
                    name = f"{kind} {place}"
            roll = rng.random()
            flavour = "security" if roll < 0.5 else ("unified" if roll < 0.75 else "mail-security")
            desc = None if rng.random() < 0.2 else f"{name} ({'Microsoft 365' if flavour == 'unified' else 'security'} group)"
            size_roll = rng.random()
            if size_roll < 0.05:
                size = 0
            elif size_roll < 0.5:
                size = rng.randrange(1, 11)
            elif size_roll < 0.9:
                size = rng.randrange(10, 51)
            else:
                size = rng.randrange(50, 501)
            members = sorted(rng.sample(range(n), min(size, n))) if n else []
        names_so_far.append(name)
        groups.append(_group(rng, name, domain, used_nicks, flavour, desc))
        member_lists.append(members)

    # Nested groups: a group only contains groups with a larger index, so there are no cycles.
    nested: list[list[int]] = [[] for _ in range(m)]
    first_free = 2 + n_departments
    for gi in range(2, m - 1):
        if rng.random() < 0.15:
            k = rng.randrange(1, 4)
            nested[gi] = sorted(rng.sample(range(gi + 1, m), min(k, m - gi - 1)))
    if m >= 6:
        a, b, c = 2, max(first_free, m - 2), m - 1
        if b <= a:
            b = a + 1
        if c > b and b not in nested[a]:
            nested[a] = sorted(nested[a] + [b])
        if c > b and c not in nested[b]:
            nested[b] = sorted(nested[b] + [c])

    if memberships is not None:
        _fit_team_sizes(random.Random(rng.getrandbits(64)), member_lists, nested, first_free, n, memberships)
    for gi, group in enumerate(groups):
        group["members"] = [{"@odata.type": USER_TYPE, "id": users[i]["id"]} for i in member_lists[gi]] + [
            {"@odata.type": GROUP_TYPE, "id": groups[j]["id"]} for j in nested[gi]
        ]
    return groups


def _fit_team_sizes(rng: random.Random, member_lists: list[list[int]], nested: list[list[int]], first_team: int,
                    n: int, memberships: int) -> None:
    """Resize the team groups' user lists (in place) so that all groups hold `memberships` member values
    (users and nested groups) in all: each team keeps its share of the teams' total. The first groups (all
    employees, managers, departments) and the nesting stay as they are; a target below what they hold
    empties the teams."""
    fixed = sum(len(m) for m in member_lists[:first_team]) + sum(len(g) for g in nested)
    teams = list(range(first_team, len(member_lists)))
    budget = max(0, memberships - fixed)
    current = sum(len(member_lists[gi]) for gi in teams)
    if not teams or n == 0:
        return
    if current == 0:  # every team was drawn empty: spread the budget evenly
        sizes = {gi: budget // len(teams) + (1 if k < budget % len(teams) else 0) for k, gi in enumerate(teams)}
    else:
        sizes, carried = {}, 0.0
        for gi in teams:  # cumulative rounding: the sizes add up to the budget exactly
            carried += budget * len(member_lists[gi]) / current
            sizes[gi] = round(carried) - sum(sizes.values())
    for gi in teams:
        member_lists[gi] = sorted(rng.sample(range(n), min(sizes[gi], n)))


def generate_tenant(
    users: int, groups: int, seed: int = 2026, domain: str | None = None, hostile: bool = False,
    memberships: int | None = None,
) -> dict[str, Any]:
    """A tenant document: {"tenant": {...}, "users": [...], "groups": [...]}.

    memberships: the member values of all groups together (users and nested groups); the team groups are
    resized to reach it (the first group, "All Employees", always holds every user). None: as drawn.

    hostile: names and shapes that break naive directory code instead of realistic ones (see
    emulator.hostile); the document then also has "devices", "servicePrincipals" and "contacts".
    """
    if users < 0 or groups < 0:
        raise ValueError("users and groups must not be negative")
    domain = domain or DEFAULT_DOMAIN
    if hostile:
        if memberships is not None:
            raise ValueError("memberships is not an option of the hostile tenant")
        from .hostile import hostile_tenant

        return hostile_tenant(users, groups, seed=seed, domain=domain)
    rng = random.Random(seed)
    tenant = {"id": _uuid(rng), "client_id": _uuid(rng), "domain": domain, "displayName": "Contoso"}
    used_nicks = _Nicknames()
    user_list = _users(rng, users, domain, used_nicks)
    group_list = _groups(rng, groups, user_list, domain, used_nicks, memberships)
    return {"tenant": tenant, "users": user_list, "groups": group_list}


def dumps_tenant(doc: dict[str, Any]) -> str:
    """One object per line: compact, yet diffable."""

    def one(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    parts = ['{"tenant":' + one(doc.get("tenant", {})) + ",\n"]
    keys = ["users", *(k for k in MEMBER_ONLY_KINDS if k in doc), "groups"]
    for key in keys:
        items = doc.get(key, [])
        parts.append(f'"{key}":[\n')
        parts.append(",\n".join(one(item) for item in items))
        parts.append("\n]" + ("}\n" if key == "groups" else ",\n"))
    return "".join(parts)


def write_tenant(
    path: str | os.PathLike,
    users: int,
    groups: int,
    seed: int = 2026,
    domain: str | None = None,
    hostile: bool = False,
    memberships: int | None = None,
) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = dumps_tenant(generate_tenant(users, groups, seed=seed, domain=domain, hostile=hostile,
                                        memberships=memberships))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
