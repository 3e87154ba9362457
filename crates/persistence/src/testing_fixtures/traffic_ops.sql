-- The part of a Traffic Ops database that asyncstatus reads and writes in
-- database.layout = "traffic_ops", as shared/TRAFFIC_OPS.md §1 describes Traffic Ops'
-- traffic_ops/app/db/create_tables.sql and seeds.sql: the tables in the public schema with
-- their constraints, defaults and triggers, and the seeded roles with their permissions.
-- Test fixture only: written here from those facts, not copied.
SET search_path TO public;

CREATE FUNCTION public.on_update_current_timestamp_last_updated() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_updated = now();
    RETURN NEW;
END;
$$;

CREATE TABLE public.last_deleted (
    table_name text NOT NULL PRIMARY KEY,
    last_updated timestamp with time zone NOT NULL DEFAULT now()
);

CREATE FUNCTION public.on_delete_current_timestamp_last_updated() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.last_deleted SET last_updated = now() WHERE table_name = TG_ARGV[0];
    RETURN NULL;
END;
$$;

CREATE TABLE public.tenant (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    active boolean NOT NULL DEFAULT false,
    parent_id bigint DEFAULT 1 CHECK (id != parent_id) REFERENCES public.tenant (id),
    last_updated timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE public.role (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    description text NOT NULL,
    priv_level bigint NOT NULL,
    last_updated timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE public.role_capability (
    role_id bigint NOT NULL REFERENCES public.role (id) ON DELETE CASCADE,
    cap_name text NOT NULL,
    last_updated timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (role_id, cap_name)
);

CREATE TABLE public.tm_user (
    id bigserial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    public_ssh_key text,
    role bigint REFERENCES public.role (id) ON DELETE SET NULL,
    uid bigint,
    gid bigint,
    local_passwd text,
    confirm_local_passwd text,
    last_updated timestamp with time zone NOT NULL DEFAULT now(),
    company text,
    email text UNIQUE,
    full_name text,
    new_user boolean NOT NULL DEFAULT false,
    address_line1 text,
    address_line2 text,
    city text,
    state_or_province text,
    phone_number text,
    postal_code text,
    country text,
    token text,
    registration_sent timestamp with time zone,
    tenant_id bigint NOT NULL REFERENCES public.tenant (id) MATCH FULL,
    last_authenticated timestamp with time zone,
    ucdn text NOT NULL DEFAULT ''
);

CREATE TABLE public.async_status (
    id bigserial PRIMARY KEY,
    status text NOT NULL,
    message text,
    start_time timestamp with time zone NOT NULL DEFAULT now(),
    end_time timestamp with time zone
);

CREATE TABLE public.cdni_capability_updates (
    id bigserial PRIMARY KEY,
    request_type text NOT NULL,
    ucdn text NOT NULL,
    host text,
    data json NOT NULL,
    async_status_id bigint NOT NULL REFERENCES public.async_status (id) ON DELETE CASCADE,
    last_updated timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TRIGGER on_update_current_timestamp BEFORE UPDATE ON public.tenant
    FOR EACH ROW EXECUTE PROCEDURE public.on_update_current_timestamp_last_updated();
CREATE TRIGGER on_update_current_timestamp BEFORE UPDATE ON public.role
    FOR EACH ROW EXECUTE PROCEDURE public.on_update_current_timestamp_last_updated();
CREATE TRIGGER on_update_current_timestamp BEFORE UPDATE ON public.role_capability
    FOR EACH ROW EXECUTE PROCEDURE public.on_update_current_timestamp_last_updated();
CREATE TRIGGER on_update_current_timestamp BEFORE UPDATE ON public.tm_user
    FOR EACH ROW EXECUTE PROCEDURE public.on_update_current_timestamp_last_updated();
CREATE TRIGGER on_delete_current_timestamp AFTER DELETE ON public.tm_user
    FOR EACH ROW EXECUTE PROCEDURE public.on_delete_current_timestamp_last_updated('tm_user');
CREATE TRIGGER on_delete_current_timestamp AFTER DELETE ON public.role
    FOR EACH ROW EXECUTE PROCEDURE public.on_delete_current_timestamp_last_updated('role');

INSERT INTO public.last_deleted (table_name) VALUES ('tm_user'), ('role');
INSERT INTO public.tenant (id, name, active, parent_id) VALUES (1, 'root', true, NULL);
SELECT setval('public.tenant_id_seq', 1);

INSERT INTO public.role (name, description, priv_level) VALUES
    ('admin', 'Has access to everything.', 30),
    ('operations', 'Has all reads and most write capabilities', 20),
    ('read-only', 'Has access to all read capabilities', 10),
    ('federation', 'Role for Secondary CZF', 15),
    ('steering', 'Role for Steering Delivery Services', 15),
    ('portal', 'Portal User', 2),
    ('disallowed', 'Block all access', 0),
    ('trouter', 'Limited role for Traffic Router calls to Traffic Ops', 10);

INSERT INTO public.role_capability (role_id, cap_name)
SELECT id, 'ALL' FROM public.role WHERE name = 'admin';
INSERT INTO public.role_capability (role_id, cap_name)
SELECT r.id, c.cap_name
FROM public.role r
CROSS JOIN (VALUES ('ASYNC-STATUS:READ'), ('CDN:READ'), ('DELIVERY-SERVICE:READ')) AS c (cap_name)
WHERE r.name IN ('operations', 'read-only', 'portal', 'federation', 'steering');
INSERT INTO public.role_capability (role_id, cap_name)
SELECT id, 'CDN:READ' FROM public.role WHERE name = 'trouter';
