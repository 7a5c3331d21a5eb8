//! The logging macros and the export macro.

/// Logs a `format!` message at `trace` level through the host.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::host::log($crate::LogLevel::Trace, &::std::format!($($arg)+)) };
}

/// Logs a `format!` message at `debug` level through the host.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::host::log($crate::LogLevel::Debug, &::std::format!($($arg)+)) };
}

/// Logs a `format!` message at `info` level through the host.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::host::log($crate::LogLevel::Info, &::std::format!($($arg)+)) };
}

/// Logs a `format!` message at `warn` level through the host.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::host::log($crate::LogLevel::Warn, &::std::format!($($arg)+)) };
}

/// Logs a `format!` message at `error` level through the host.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::host::log($crate::LogLevel::Error, &::std::format!($($arg)+)) };
}

/// Exports a [`Plugin`](crate::Plugin) implementation as a component
/// implementing the named hooks, and only those:
///
/// ```ignore
/// export_plugin!(MyPlugin: access);
/// export_plugin!(Noop: access, rate_limit, message_hook, events);
/// ```
///
/// `MyPlugin` must be a type name in scope at the crate's root module (where
/// the macro is invoked). Each hook becomes the export of its WIT interface:
/// `access` → `chat:plugin/access@0.1.0`, `rate_limit` →
/// `chat:plugin/rate-limit@0.1.0`, `message_hook` →
/// `chat:plugin/message-hook@0.1.0`, `events` → `chat:plugin/events@0.1.0`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ident : $($hook:ident),+ $(,)?) => {
        $( $crate::__export_hook!($hook $ty); )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_hook {
    (access $ty:ident) => {
        #[doc(hidden)]
        #[allow(missing_docs, unused, clippy::all)]
        mod __chat_plugin_access {
            $crate::__hook_bindings!("access-plugin");
            impl self::exports::chat::plugin::access::Guest for super::$ty {
                fn check(req: $crate::Request) -> $crate::Verdict {
                    <super::$ty as $crate::Plugin>::check(req)
                }
            }
            use super::$ty;
            #[cfg(target_arch = "wasm32")]
            export!($ty with_types_in self);
        }
    };
    (rate_limit $ty:ident) => {
        #[doc(hidden)]
        #[allow(missing_docs, unused, clippy::all)]
        mod __chat_plugin_rate_limit {
            $crate::__hook_bindings!("rate-limit-plugin");
            impl self::exports::chat::plugin::rate_limit::Guest for super::$ty {
                fn policy(req: $crate::Request) -> ::core::option::Option<$crate::RateLimit> {
                    <super::$ty as $crate::Plugin>::policy(req)
                }
            }
            use super::$ty;
            #[cfg(target_arch = "wasm32")]
            export!($ty with_types_in self);
        }
    };
    (message_hook $ty:ident) => {
        #[doc(hidden)]
        #[allow(missing_docs, unused, clippy::all)]
        mod __chat_plugin_message_hook {
            $crate::__hook_bindings!("message-hook-plugin");
            impl self::exports::chat::plugin::message_hook::Guest for super::$ty {
                fn on_message(req: $crate::Request, body: ::std::string::String) -> $crate::HookVerdict {
                    <super::$ty as $crate::Plugin>::on_message(req, body)
                }
            }
            use super::$ty;
            #[cfg(target_arch = "wasm32")]
            export!($ty with_types_in self);
        }
    };
    (events $ty:ident) => {
        #[doc(hidden)]
        #[allow(missing_docs, unused, clippy::all)]
        mod __chat_plugin_events {
            $crate::__hook_bindings!("events-plugin");
            impl self::exports::chat::plugin::events::Guest for super::$ty {
                fn on_event(event: $crate::Event) {
                    <super::$ty as $crate::Plugin>::on_event(event)
                }
            }
            use super::$ty;
            #[cfg(target_arch = "wasm32")]
            export!($ty with_types_in self);
        }
    };
    ($other:ident $ty:ident) => {
        ::core::compile_error!(::core::concat!(
            "unknown hook `", ::core::stringify!($other),
            "`: expected access, rate_limit, message_hook or events"
        ));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hook_bindings {
    ($world:literal) => {
        $crate::__chat_plugin_generate!(
            world: $world,
            runtime_path: "::chat_plugin_sdk::__private::wit_bindgen::rt",
            with: {
                "chat:plugin/types@0.1.0": ::chat_plugin_sdk::bindings::chat::plugin::types,
                "chat:plugin/host@0.1.0": ::chat_plugin_sdk::bindings::chat::plugin::host,
                "chat:plugin/kv@0.1.0": ::chat_plugin_sdk::bindings::chat::plugin::kv,
                "chat:plugin/audit@0.1.0": ::chat_plugin_sdk::bindings::chat::plugin::audit,
            },
        );
    };
}
