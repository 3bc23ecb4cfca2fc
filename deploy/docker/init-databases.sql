-- One database per service, like the local stack (deploy/local). The postgres image runs this
-- once, on an empty data directory (docker-entrypoint-initdb.d); each service applies its own
-- migrations at start (shared/db.py).
CREATE DATABASE ucj_registration;
CREATE DATABASE ucj_contributions;
CREATE DATABASE ucj_claims;
CREATE DATABASE ucj_coverage;
