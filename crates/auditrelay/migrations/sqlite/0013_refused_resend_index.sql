-- The delivery supervisor looks for refused events marked to be sent again on every pass: an
-- index of the marked ones only keeps that look free however long the refused lists grow.
CREATE INDEX refused_events_to_resend ON refused_events (resend_requested_at)
    WHERE resend_requested_at IS NOT NULL;
