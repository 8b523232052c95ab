"""Every endpoint the manager serves, in one table: (method, path pattern, handler).

Grouped by resource, each group listed as classic swarm's `api/primary.go` lists its routes (HEAD,
GET, POST, PUT, DELETE). A handler is `async def handler(ctx, req)`; `build_router` binds the
context. `{name:path}` parameters span slashes (image names, `node/name` references).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from swarmd.manager.api import build, containers, events, execs, images, networks, nodes, system, unsupported

Handler = Callable[..., Awaitable]

ROUTES: list[tuple[str, str, Handler]] = [
    # -- system ---------------------------------------------------------------------------------
    ("HEAD", "/_ping", system.ping),
    ("GET", "/_ping", system.ping),
    ("GET", "/events", events.events),
    ("GET", "/info", system.info),
    ("GET", "/version", system.version),
    ("GET", "/system/df", system.disk_usage),
    ("POST", "/auth", system.auth),

    # -- containers -----------------------------------------------------------------------------
    ("HEAD", "/containers/{id:path}/archive", partial(containers.relay_to_container, suffix="/archive")),
    ("GET", "/containers/json", containers.list_containers),
    ("GET", "/containers/{id:path}/archive", partial(containers.stream_from_container, suffix="/archive")),
    ("GET", "/containers/{id:path}/export", partial(containers.stream_from_container, suffix="/export")),
    ("GET", "/containers/{id:path}/changes", partial(containers.relay_to_container, suffix="/changes")),
    ("GET", "/containers/{id:path}/json", containers.inspect_container),
    ("GET", "/containers/{id:path}/top", partial(containers.relay_to_container, suffix="/top")),
    ("GET", "/containers/{id:path}/logs", partial(containers.stream_from_container, suffix="/logs")),
    ("GET", "/containers/{id:path}/stats", containers.container_stats),
    ("GET", "/containers/{id:path}/attach/ws", containers.attach_websocket),
    ("POST", "/containers/create", containers.create_container),
    ("POST", "/containers/{id:path}/kill", partial(containers.container_action, action="kill")),
    ("POST", "/containers/{id:path}/pause", partial(containers.container_action, action="pause")),
    ("POST", "/containers/{id:path}/unpause", partial(containers.container_action, action="unpause")),
    ("POST", "/containers/{id:path}/rename", containers.rename_container),
    ("POST", "/containers/{id:path}/restart", partial(containers.container_action, action="restart")),
    ("POST", "/containers/{id:path}/start", partial(containers.container_action, action="start")),
    ("POST", "/containers/{id:path}/stop", partial(containers.container_action, action="stop")),
    ("POST", "/containers/{id:path}/update", containers.update_container),
    ("POST", "/containers/{id:path}/wait", partial(containers.stream_from_container, suffix="/wait")),
    ("POST", "/containers/{id:path}/resize", partial(containers.relay_to_container, suffix="/resize")),
    ("POST", "/containers/{id:path}/attach", partial(containers.stream_from_container, suffix="/attach")),
    ("POST", "/containers/{id:path}/exec", containers.create_exec),
    ("POST", "/containers/prune", containers.prune_containers),
    ("PUT", "/containers/{id:path}/archive", partial(containers.relay_to_container, suffix="/archive")),
    ("DELETE", "/containers/{id:path}", containers.remove_container),

    # -- exec instances -------------------------------------------------------------------------
    ("GET", "/exec/{id}/json", execs.inspect_exec),
    ("POST", "/exec/{id}/start", execs.start_exec),
    ("POST", "/exec/{id}/resize", execs.resize_exec),

    # -- images ---------------------------------------------------------------------------------
    ("GET", "/images/json", images.list_images),
    ("GET", "/images/search", images.search_images),
    ("GET", "/images/get", images.save_images),
    ("GET", "/images/{name:path}/get", images.save_image),
    ("GET", "/images/{name:path}/history", images.image_history),
    ("GET", "/images/{name:path}/json", images.inspect_image),
    ("POST", "/commit", images.commit_container),
    ("POST", "/build", build.build_image),
    ("POST", "/build/prune", images.prune_build_cache),
    ("POST", "/images/create", images.create_image),
    ("POST", "/images/load", images.load_images),
    ("POST", "/images/{name:path}/push", images.push_image),
    ("POST", "/images/{name:path}/tag", images.tag_image),
    ("POST", "/images/prune", images.prune_images),
    ("DELETE", "/images/{name:path}", images.remove_image),

    # -- networks -------------------------------------------------------------------------------
    ("GET", "/networks", networks.list_networks),
    ("GET", "/networks/{id:path}", networks.inspect_network),
    ("POST", "/networks/create", networks.create_network),
    ("POST", "/networks/{id:path}/connect", networks.connect_network),
    ("POST", "/networks/{id:path}/disconnect", networks.disconnect_network),
    ("POST", "/networks/prune", networks.prune_networks),
    ("DELETE", "/networks/{id:path}", networks.remove_network),

    # -- volumes --------------------------------------------------------------------------------
    ("GET", "/volumes", networks.list_volumes),
    ("GET", "/volumes/{name:path}", networks.inspect_volume),
    ("POST", "/volumes/create", networks.create_volume),
    ("POST", "/volumes/prune", networks.prune_volumes),
    ("DELETE", "/volumes/{name:path}", networks.remove_volume),

    # -- nodes (swarm mode's node endpoints over swarmd's nodes) ---------------------------------
    ("GET", "/nodes", nodes.list_nodes),
    ("GET", "/nodes/{id}", nodes.inspect_node),
    ("POST", "/nodes/{id}/update", nodes.update_node),
    ("DELETE", "/nodes/{id}", nodes.remove_node),

    # -- not offered by a classic cluster: 501 on every method, at each prefix and under it ------
    *((method, pattern, partial(unsupported.refuse, what=what))
      for prefix, what in unsupported.UNSUPPORTED
      for method in unsupported.METHODS
      for pattern in (prefix, prefix + "/{rest:path}")),
]

# Handlers answered as soon as the engine has made the change, before the agent's read-back of the
# container is stored: every other handler runs once the changes answered before it are in the view
# (read-your-writes); these two look the container up themselves (placement holds a created
# container's name and place meanwhile; an action waits only when it cannot find its container).
ANSWERED_BEFORE_READ_BACK: frozenset[Handler] = frozenset({containers.create_container, containers.container_action})
