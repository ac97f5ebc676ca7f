-- The encoder settings that produced a result (JSON: preset, CRF, film grain, ...).
ALTER TABLE files ADD COLUMN encode_settings TEXT;
