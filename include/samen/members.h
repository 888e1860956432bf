/*
 * members.h - members, roles, devices and approvals of a plan.
 *
 * What each role may do is docs/rights.md. Every function here that
 * changes something adds ops to an open edit session (samen_edit_begin);
 * nothing takes effect before samen_edit_commit(), and whether it takes
 * effect at all is decided by every replica from the change's causal past
 * (a grant beyond the author's rights is stored but rejected).
 *
 * A member is named by its name, by a prefix (4+ hex digits) of its member
 * id or of one of its devices, or by "client"/"klant" for the client.
 */
#ifndef SAMEN_MEMBERS_H
#define SAMEN_MEMBERS_H

#include "samen/common.h"
#include "samen/plan.h"

#include <stddef.h>
#include <stdint.h>

/* Create a plan whose creator is the client (creator_role "client") or the
 * client's coordinator ("coordinator", what samen_plan_create() does). */
SAMEN_EXTERN int samen_plan_create_as(samen_plan **out, samen_store *store, const char *client, const char *lang,
                                      const char *creator_role);

/* Add a member with their first device (64 hex digits) and a role:
 * coordinator, professional, network (vip) or observer (Dutch names work
 * too). A professional added by anyone but the client waits for the
 * client's approval. */
SAMEN_EXTERN int samen_edit_member_add_role(samen_edit *edit, const char *device_key_hex, const char *name,
                                            const char *role);
SAMEN_EXTERN int samen_edit_member_revoke(samen_edit *edit, const char *member);
/* Set a professional's life areas (names or ids of area entities). A wider
 * scope waits for the client's approval. */
SAMEN_EXTERN int samen_edit_member_scope(samen_edit *edit, const char *member, const char *const *areas,
                                         size_t nareas);
/* Approve the waiting addition or scope of member. consent != 0: a
 * coordinator records that the client consented (shown as such in the log). */
SAMEN_EXTERN int samen_edit_member_approve(samen_edit *edit, const char *member, int consent);
SAMEN_EXTERN int samen_edit_device_link(samen_edit *edit, const char *member, const char *device_key_hex);
/* device: 64 hex digits or a unique prefix of 4+ digits. */
SAMEN_EXTERN int samen_edit_device_unlink(samen_edit *edit, const char *device);

typedef struct {
	const char *id;           /* 64 hex; all zeros for the client */
	const char *name;
	const char *role;         /* "client" ... "observer"; "none" while waiting */
	const char *pending_role; /* a role waiting for the client's approval, or NULL */
	int revoked;
	const char *areas;        /* professional: life area names, comma separated ("" when none) */
	int scope_pending;        /* a wider scope waits for approval */
	const char *added_by;     /* change id (hex), "" for the genesis */
	int64_t added_time;
	size_t ndevices;          /* devices linked and not unlinked */
} samen_member_view;
typedef int (*samen_member_view_cb)(const samen_member_view *m, void *payload);
/* Every member the plan ever had, the client first. */
SAMEN_EXTERN int samen_member_views(samen_plan *plan, samen_member_view_cb cb, void *payload);
/* One member (see above for how to name one). */
SAMEN_EXTERN int samen_member_show(samen_plan *plan, const char *member, samen_member_view_cb cb, void *payload);

typedef struct {
	const char *device;       /* 64 hex */
	const char *member;       /* member id, 64 hex */
	const char *member_name;
	const char *role;
	int64_t linked_time;      /* time of the change that linked it */
	const char *linked_by;    /* change id, "" for the genesis */
	int unlinked;
	int64_t unlinked_time;
	int64_t last_change_time; /* its newest change this replica holds, 0 if none */
	int64_t last_sync;        /* when it last synced with this device (local sync log); -1 unknown */
	int may_sync;             /* samen serve lets it sync now */
} samen_device_view;
typedef int (*samen_device_view_cb)(const samen_device_view *d, void *payload);
/* Every device ever linked; member NULL for all members. */
SAMEN_EXTERN int samen_device_views(samen_plan *plan, const char *member, samen_device_view_cb cb, void *payload);

/* May the device with this key (64 hex) sync this plan now? *may gets 1 or
 * 0. The peer protocol asks this before any data moves. */
SAMEN_EXTERN int samen_plan_device_may_sync(samen_plan *plan, const char *device_key_hex, int *may);

#endif
