-- Every year's workforce figure is kept (a region's UCJ uses the latest year at or before the
-- date asked), so a figure is one per region and year, no longer one per region.
ALTER TABLE workforce DROP CONSTRAINT workforce_pkey;
ALTER TABLE workforce ADD PRIMARY KEY (region_code, year);

-- A region's UCJ target per year (RPJMN, RKP, a regional plan), in percent as published:
-- 37.10 for 37.10%. Every year is kept.
CREATE TABLE ucj_targets (
    region_code text         NOT NULL,
    year        int          NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    ucj_target  numeric(7,4) NOT NULL CHECK (ucj_target BETWEEN 0 AND 100),
    source      text         NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (region_code, year)
);
