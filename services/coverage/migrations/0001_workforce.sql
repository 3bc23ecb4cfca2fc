-- The working population (angkatan kerja / penduduk bekerja) of a region: the UCJ denominator.
-- BPS Sakernas publishes it once a year (August round); the figure carries its year and source,
-- and one figure per region is current. The numerator (active participants) is never stored
-- here: it comes live from the region-counters topic.
CREATE TABLE workforce (
    region_code text        PRIMARY KEY,
    workforce   bigint      NOT NULL CHECK (workforce > 0),
    year        int         NOT NULL CHECK (year BETWEEN 2000 AND 2200),
    source      text        NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
