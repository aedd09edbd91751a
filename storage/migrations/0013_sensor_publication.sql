-- 0013_sensor_publication: who operates each sensor (the institution responsible) and whether its location may be
-- published exactly (issue 21; used by the public data views). A microsensor hosted at a private home may be
-- published at a coarser location. Set with `aqnet sensors publication` (storage/publication.py), recorded in
-- audit_log. Never edit after release: add a later migration instead.

ALTER TABLE sensors
    ADD COLUMN operator text NOT NULL DEFAULT '',
    ADD COLUMN location_publication text CHECK (location_publication IN ('exact', 'coarse'));
COMMENT ON COLUMN sensors.operator IS 'The institution responsible for the sensor (e.g. the city''s environment office).';
COMMENT ON COLUMN sensors.location_publication IS
    'exact: the location may be published as registered; coarse: only rounded (sensors_public_location); NULL: '
    'exact for reference stations, coarse for microsensors (which may stand at a private home).';

-- The location each sensor may be published at. Coarse: latitude and longitude rounded to 0.01° (about 1.1 km of
-- latitude) -- an aqnet convention, not from a norm or guideline.
CREATE VIEW sensors_public_location AS
SELECT s.id, s.name, s.kind, s.locality, s.operator, p.publication AS location_publication,
       CASE WHEN p.publication = 'exact' THEN s.lat ELSE round(s.lat::numeric, 2)::double precision END AS lat,
       CASE WHEN p.publication = 'exact' THEN s.lon ELSE round(s.lon::numeric, 2)::double precision END AS lon,
       CASE WHEN p.publication = 'exact' THEN s.address ELSE '' END AS address
FROM sensors s,
     LATERAL (SELECT coalesce(s.location_publication,
                              CASE WHEN s.kind = 'station' THEN 'exact' ELSE 'coarse' END) AS publication) p;
COMMENT ON VIEW sensors_public_location IS
    'Each sensor''s operator and the location it may be published at: exact, or rounded to 0.01° (no address) '
    'when coarse (sensors.location_publication, by kind when unset).';

GRANT SELECT ON sensors_public_location TO aqnet_readonly;
