-- Extra headers a webhook destination sends with every delivery (our extension): a JSON object
-- of name → value, sealed like the authorization value, since values are often credentials.
-- NULL: none.
ALTER TABLE destinations ADD COLUMN headers_sealed BLOB;
