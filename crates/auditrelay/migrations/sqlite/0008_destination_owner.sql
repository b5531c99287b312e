-- Who a destination belongs to: the organization (NULL) or one portal. A portal admin sees,
-- changes and binds only its portal's destinations; organization roles any. Existing
-- destinations were made by organization roles: they stay the organization's.
ALTER TABLE destinations ADD COLUMN portal_id TEXT;
CREATE INDEX destinations_org_portal_created ON destinations (org_id, portal_id, created_at, id);
