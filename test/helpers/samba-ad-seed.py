#!/usr/bin/python3
# Seeds a freshly provisioned, offline Samba AD sam.ldb through Samba's python bindings:
# one process instead of ~20 samba-tool runs. Used by samba-ad.ts when it builds its template.
# Usage: /usr/bin/python3 samba-ad-seed.py /path/to/smb.conf
import sys
import ldb
from samba.param import LoadParm
from samba.auth import system_session
from samba.samdb import SamDB

NEVER = str(-0x8000000000000000)          # AD's "never" for maxPwdAge
MINUTES_30 = str(-30 * 60 * 10_000_000)   # durations are negative 100 ns intervals

lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
base = str(db.domain_dn())


def replace(dn, **attrs):
    m = ldb.Message(ldb.Dn(db, dn))
    for k, v in attrs.items():
        m[k] = ldb.MessageElement(str(v), ldb.FLAG_MOD_REPLACE, k)
    db.modify(m)


# Password policy: no ageing/history (tests change passwords freely); 3 bad binds lock for 30 min.
replace(base, maxPwdAge=NEVER, minPwdAge=0, pwdHistoryLength=0,
        lockoutThreshold=3, lockoutDuration=MINUTES_30, lockOutObservationWindow=MINUTES_30)

db.create_ou("OU=Contractors," + base)

# (sAMAccountName, password, givenName, sn, extra newuser kwargs); CN = sAMAccountName.
users = [
    ("alice", "Alice#Pass1", "Alice", "Anderson", {"jobtitle": "Engineering Lead"}),
    ("bob", "Bob#Pass1", "Bob", "Brown", {}),
    ("carol", "Carol#Pass1", "Carol", "Clark", {}),
    ("dave", "Dave#Pass1", "Dave", "Disabled", {}),
    ("frank", "Frank#Pass1", "Frank", "Fresh", {"force_password_change_at_next_login_req": True}),
    ("grace", "Grace#Pass1", "Grace", "Gone", {}),
    ("ivan", "Ivan#Pass1", "Ivan", "Lock", {}),
    ("erin", "Erin#Pass1", "Érin", "Öztürk", {"userou": "OU=Contractors"}),
    ("svc-broker", "Svc#Broker1", "Service", "Broker", {"description": "LDAP bind account for the broker"}),
]
for sam, pw, gn, sn, extra in users:
    db.newuser(sam, pw, givenname=gn, surname=sn, mailaddress=f"{sam}@example.test", **extra)

db.disable_account("(sAMAccountName=dave)")
db.setexpiry("(sAMAccountName=svc-broker)", 0, no_expiry_req=True)  # DONT_EXPIRE_PASSWORD
# setexpiry cannot go into the past; 1970-01-01 + 1 tick as a FILETIME is long expired.
grace = db.search(base, expression="(sAMAccountName=grace)", attrs=[])[0].dn
replace(str(grace), accountExpires=116444736000000001)

groups = {
    "Engineering": ["alice", "bob", "dave"],
    "Staff": ["Engineering", "carol"],   # nested one level
    "All Company": ["Staff", "erin"],    # nested two levels
    "Broker Admins": ["alice"],
}
for g in groups:
    db.newgroup(g, description=f"test group {g}")  # default: global security group in CN=Users
for g, members in groups.items():
    db.add_remove_group_members(g, members, add_members_operation=True)
print("seeded", len(users), "users and", len(groups), "groups under", base)
