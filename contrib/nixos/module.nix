# NixOS module for data-mesher: services.data-mesher.
#
#   imports = [ ./path/to/data-mesher/contrib/nixos/module.nix ];
#   services.data-mesher = {
#     enable = true;
#     openFirewall = true;
#     settings = {
#       network.id = "prod-fleet";
#       network.bootstrap = [ "/ip4/10.0.0.1/tcp/7946/p2p/12D3KooW..." ];
#       files."dns/cnames" = [ "P6AE0lukf9/qmVglYrGPNYo5ZnpFrnqLeAzlCZF0lTk=" ];
#     };
#   };
#
# The service is the NixOS form of contrib/systemd/data-mesher.service; keep
# the two in step. See docs/NIXOS.md.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.data-mesher;
  settingsFormat = pkgs.formats.toml { };

  # Where every dm command looks by default, so `dm publish` and `dm status`
  # on the machine need no --config.
  configPath = "/etc/data-mesher/dm.toml";
  configFile = settingsFormat.generate "dm.toml" cfg.settings;

  stateDir = "/var/lib/data-mesher";
  runtimeDir = "/run/data-mesher";

  # TCP ports of the multiaddrs in network.listen ("/ip4/0.0.0.0/tcp/7946" -> 7946).
  tcpPortOf = addr:
    let m = builtins.match "/(ip4|ip6|dns|dns4|dns6)/[^/]+/tcp/([0-9]+)(/.*)?" addr;
    in if m == null then [ ] else [ (lib.toInt (builtins.elemAt m 1)) ];
  listenPorts = lib.unique (lib.concatMap tcpPortOf cfg.settings.network.listen);

  # SIGHUP re-reads [files], log_level and max_clock_skew_ms; anything else
  # needs a restart. NixOS reloads the unit when only reloadTriggers change.
  reloadable = [ "files" "log_level" "max_clock_skew_ms" ];
in
{
  options.services.data-mesher = {
    enable = lib.mkEnableOption "data-mesher, which replicates small signed files to every machine of a fleet";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The data-mesher package; its bin/dm runs the daemon and is put on the system PATH.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 7946;
      description = ''
        TCP port of the mesh, used by the default {option}`settings.network.listen`.
        {option}`openFirewall` opens the TCP ports of the addresses actually in
        {option}`settings.network.listen`, so setting that directly needs no change here.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the mesh's TCP port(s), taken from {option}`settings.network.listen`, in the firewall.";
    };

    settings = lib.mkOption {
      description = ''
        Contents of ${configPath}, as TOML. Every key of config.example.toml
        may be set; the ones below have defaults this module relies on.
        `dm config check` validates the result.
      '';
      default = { };
      example = lib.literalExpression ''
        {
          network.id = "prod-fleet";
          network.bootstrap = [ "/ip4/10.0.0.1/tcp/7946/p2p/12D3KooW..." ];
          metrics.listen = "127.0.0.1:9464";
          files."dns/cnames" = [ "P6AE0lukf9/qmVglYrGPNYo5ZnpFrnqLeAzlCZF0lTk=" ];
        }
      '';
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          state_dir = lib.mkOption {
            type = lib.types.str;
            default = stateDir;
            description = "The daemon's state; must stay ${stateDir}, the unit's StateDirectory.";
          };
          network = lib.mkOption {
            default = { };
            description = "The [network] table.";
            type = lib.types.submodule {
              freeformType = settingsFormat.type;
              options.listen = lib.mkOption {
                type = lib.types.listOf lib.types.str;
                default = [ "/ip4/0.0.0.0/tcp/${toString cfg.port}" ];
                defaultText = lib.literalExpression ''[ "/ip4/0.0.0.0/tcp/''${toString config.services.data-mesher.port}" ]'';
                description = "Multiaddrs to listen on.";
              };
            };
          };
          api = lib.mkOption {
            default = { };
            description = "The [api] table.";
            type = lib.types.submodule {
              freeformType = settingsFormat.type;
              options.socket = lib.mkOption {
                type = lib.types.str;
                default = "${runtimeDir}/api.sock";
                description = "The local API socket; must be in ${runtimeDir}, the unit's RuntimeDirectory.";
              };
            };
          };
          files = lib.mkOption {
            type = lib.types.attrsOf (lib.types.nonEmptyListOf lib.types.str);
            default = { };
            example = { "dns/cnames" = [ "P6AE0lukf9/qmVglYrGPNYo5ZnpFrnqLeAzlCZF0lTk=" ]; };
            description = "The allowlist: file name to the base64 Ed25519 public keys allowed to sign it.";
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.settings.state_dir == stateDir;
        message = "services.data-mesher.settings.state_dir must be ${stateDir} (the unit's StateDirectory; ProtectSystem=strict makes other paths read-only).";
      }
      {
        assertion = lib.hasPrefix "${runtimeDir}/" cfg.settings.api.socket;
        message = "services.data-mesher.settings.api.socket must be in ${runtimeDir}/ (the unit's RuntimeDirectory).";
      }
      {
        assertion = !cfg.openFirewall || listenPorts != [ ];
        message = "services.data-mesher.openFirewall: no /tcp/PORT found in settings.network.listen.";
      }
    ];

    environment.etc."data-mesher/dm.toml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    # A fixed user rather than DynamicUser: consumers join the data-mesher
    # group to read the files, and DynamicUser's /var/lib/private (0700)
    # would keep them out.
    users.users.data-mesher = {
      isSystemUser = true;
      group = "data-mesher";
      home = stateDir;
      description = "data-mesher daemon";
    };
    users.groups.data-mesher = { };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall listenPorts;

    systemd.services.data-mesher = {
      description = "data-mesher: replicate signed files across the fleet";
      documentation = [ "file:${cfg.package}/lib/node_modules/data-mesher/README.md" ];
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # The daemon runs systemd-notify for Type=notify readiness.
      path = [ config.systemd.package ];
      restartTriggers = [ (builtins.toJSON (builtins.removeAttrs cfg.settings reloadable)) ];
      reloadTriggers = [ configFile ];

      serviceConfig = {
        # Readiness is real: systemd-notify runs once the API socket answers.
        # Node cannot write the notify datagram itself, hence NotifyAccess=all.
        Type = "notify";
        NotifyAccess = "all";
        ExecStart = "${cfg.package}/bin/dm daemon --config ${configPath}";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "2s";
        TimeoutStopSec = "30s";

        User = "data-mesher";
        Group = "data-mesher";
        StateDirectory = "data-mesher";
        StateDirectoryMode = "0750";
        RuntimeDirectory = "data-mesher";
        RuntimeDirectoryMode = "0750";
        UMask = "0027";

        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        # V8 writes executable memory for its JIT.
        MemoryDenyWriteExecute = false;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        # @pkey: V8 calls pkey_alloc() at start-up; without it seccomp kills node (SIGSYS).
        SystemCallFilter = [ "@system-service @pkey" "~@privileged @resources" ];
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK" ];
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
      };
    };
  };
}
