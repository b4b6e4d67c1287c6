-- Delete an item's next vector with the item, in the database itself.
-- The ORM cannot express it: Django 5.2 creates foreign keys without ON DELETE and
-- emulates CASCADE in Python, but items are deleted by plain SQL (`delete_item`), and
-- an item deleted while a bulk re-embedding run plans or fills its next vector must
-- simply drop out of the run, never fail with a foreign key violation.
DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO STRICT name FROM pg_constraint
    WHERE conrelid = 'embeddings_nextvector'::regclass
      AND confrelid = 'embeddings_item'::regclass AND contype = 'f';
    EXECUTE format('ALTER TABLE embeddings_nextvector DROP CONSTRAINT %I', name);
END $$;
ALTER TABLE embeddings_nextvector ADD CONSTRAINT embeddings_nextvector_item_cascade
    FOREIGN KEY (item_id) REFERENCES embeddings_item (id) ON DELETE CASCADE;
