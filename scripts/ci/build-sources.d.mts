// Types for build-sources.mjs.
/** gyp's names for the platforms the build files are checked on. */
export declare const PLATFORMS: readonly string[];
/** The sources binding.gyp compiles for target `name` (default 'reuseport') on `os`, sorted. */
export declare function gypSources(text: string, os: string, name?: string): string[];
/** The sources CMakeLists.txt puts in `variable` (default 'REUSEPORT_SOURCES') on `os`, sorted. */
export declare function cmakeSources(text: string, os: string, variable?: string): string[];
