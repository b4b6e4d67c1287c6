-- Back to Django's own foreign key of the next vectors (no ON DELETE in the database).
ALTER TABLE embeddings_nextvector DROP CONSTRAINT embeddings_nextvector_item_cascade;
ALTER TABLE embeddings_nextvector ADD CONSTRAINT embeddings_nextvector_item_id_fk
    FOREIGN KEY (item_id) REFERENCES embeddings_item (id) DEFERRABLE INITIALLY DEFERRED;
